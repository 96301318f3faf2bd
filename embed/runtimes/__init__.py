"""Fast model runtimes: the torch image tower exported to ONNX Runtime or OpenVINO, in fp32 or int8."""
