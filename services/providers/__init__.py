"""The providers service: hosted OpenAI, DashScope and LiblibAI behind one gRPC service.

A registry of adapters (built-in `adapters/` plus an optional plug-in folder) answers Chat,
ChatStream, GenerateImages, EditImages, ListModels and RewritePrompt. Result images are
downloaded here and returned as bytes, because provider URLs expire.
"""
