"""Accuracy beyond MNIST: sets of digits that are not MNIST's (drawn on the dashboard's pad, typed in many fonts,
photographed), scored through the same picture preparation as ``POST /predict``. No HTTP here."""
