"""Video-first encoders for long videos (seed 001): VideoViT, masking, contrastive loss."""
