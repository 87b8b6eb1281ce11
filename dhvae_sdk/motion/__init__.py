"""Motion representation: skeleton, rotations, InterHuman/InterX features, normalization."""
