"""Pretrained weights onto the registry's Keras models: ImageNet sources (tflkit.models.pretrained), Keras .h5 files
(load), torchvision .pth state dicts read without torch (pth, pth_port) and weights read out of a .tflite (tflite).

Layer: above models (it builds them), below training (which fine-tunes what it loads); no conversion code.
"""
