"""graphcnn's version, in a module of its own so any layer can name it without importing the
package's front door (graphcnn/__init__.py imports the API, which imports the backends)."""
from __future__ import annotations

__version__ = "0.1.0"
