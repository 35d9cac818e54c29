"""An example edge-opt plugin (docs/extending.md): an ONNX Runtime variant with basic graph
optimisations (``onnxruntime-basic``), a CSV dataset format (``csv-pixels``) and a device
profile (``example-board``)."""
