"""The Qwen-Image-Edit model server (gRPC `imagemesh.v1.ImageEditing`), on either
`QwenImageEditPipeline` (one input image) or `QwenImageEditPlusPipeline` (several)."""
