"""The model-server core both servers share: settings, loading a diffusers pipeline, the job
queue and runner, the generator a servicer calls, the gRPC calls and the entry point; a server
keeps only its request spec, its checks and its pipeline arguments."""
