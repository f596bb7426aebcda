"""What both model servers share: loading a diffusers pipeline, the one-at-a-time job queue,
request limits, and image encoding."""
