"""The diffusion maths: the continuous-time Gaussian process, its loss and classifier-free guidance
(`gaussian`), and the samplers that solve it (`samplers`). No network code here."""
