"""Look inside a network: layer hooks, feature maps, ideal class images (dream) and Grad-CAM."""
