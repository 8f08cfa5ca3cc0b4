"""PhotoSplat viewer: the public page of a scene and the scene files behind it."""
