/* Call a graphcnn AOT library from C: LeNet on a deterministic input, the top class printed.
   Build with `make` (it runs `graphcnn compile` first); see the Makefile. */
#include <stdio.h>
#include <stdlib.h>
#include "liblenet.h"

int main(void) {
    static float x[LENET_INPUT_0_SIZE], y[LENET_OUTPUT_0_SIZE];
    for (int i = 0; i < LENET_INPUT_0_SIZE; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f;  /* any input; the same every run */
    void* workspace = aligned_alloc(64, LENET_WORKSPACE_BYTES);
    float* inputs[] = {x};
    float* outputs[] = {y};
    lenet_init_threads(2);
    int status = lenet_run(inputs, outputs, workspace);
    lenet_shutdown_threads();
    free(workspace);
    if (status != 0) {
        fprintf(stderr, "lenet_run failed: %d\n", status);
        return 1;
    }
    int best = 0;
    for (int i = 0; i < LENET_OUTPUT_0_SIZE; i++) {
        printf("%s[%d] = %.6f\n", LENET_OUTPUT_0_NAME, i, y[i]);
        if (y[i] > y[best]) best = i;
    }
    printf("model %s (%s): class %d\n", LENET_GRAPH_NAME, LENET_CPU, best);
    return 0;
}
