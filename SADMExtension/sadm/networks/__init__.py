"""The networks: Aθ, the factorized 4D ViViT (`attention`), the 3D conditional UNet (`unet`), their
shared blocks (`layers`) and `sadm.SADM`, which joins them with the diffusion process."""
