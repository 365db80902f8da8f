"""Reading and writing medical images with SimpleITK, each bad file one clear error."""
