"""Microcontrollers and their NPUs: TensorFlow Lite Micro on the host (does a file run, its exact tensor arena, its
top-1 as TFLM computes it), Arm Vela for Ethos-U (SRAM, flash, NPU/CPU operators, cycles), and boards as data
("fits" per board). The optional extra `tflkit[mcu]` brings tflite-micro and ethos-u-vela; without it the commands
that need them say in one line how to install it.

Layers: tflm, vela, boards and fit import no TensorFlow and nothing above the bottom layer; measure joins them with
evaluation (top-1 on a dataset); cli is the `tflkit mcu` command.
"""
