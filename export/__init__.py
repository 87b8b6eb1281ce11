"""Export of trained models: ONNX graphs with a manifest (to_onnx.py) and TensorRT engines (to_trt.py)."""
