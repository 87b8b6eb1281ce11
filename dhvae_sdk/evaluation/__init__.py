"""Quality metrics of the InterGen protocol (FID, R-Precision, MM-Dist, Diversity, MModality)."""
