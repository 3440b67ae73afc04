print("gpu-worker ready")
