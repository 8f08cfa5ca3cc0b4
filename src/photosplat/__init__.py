"""PhotoSplat: photos in, a shareable 3D Gaussian Splatting scene out."""
