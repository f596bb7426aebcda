"""The storage service: images into a MinIO / S3 bucket, links out (presigned or public)."""
