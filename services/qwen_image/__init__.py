"""The Qwen-Image text-to-image model server (gRPC `imagemesh.v1.ImageGeneration`)."""
