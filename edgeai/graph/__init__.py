"""The graph IR and its ONNX importer and exporter.

``Graph``, ``Node`` and ``Value`` are re-exported here; the importer
(:mod:`edgeai.graph.onnx_import`), the exporter (:mod:`edgeai.graph.onnx_export`)
and the executor (:mod:`edgeai.graph.executor`) import onnx, so they are
imported on first use.

Example:
    >>> import edgeai
    >>> from edgeai.graph.onnx_import import import_onnx
    >>> g = import_onnx(edgeai.demo.model_path())
    >>> len(g.nodes) > 0
    True
"""

from __future__ import annotations

from edgeai.graph.ir import Graph, Node, Value

__all__ = ["Graph", "Node", "Value"]
