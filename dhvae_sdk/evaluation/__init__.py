"""Quality metrics of the InterGen protocol (FID, R-Precision, MM-Dist, Diversity, MModality),
VAE reconstruction errors (L1, MPJPE) and the loading of evaluator checkpoints."""
