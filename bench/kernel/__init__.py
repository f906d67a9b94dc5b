"""Every kernel ABI hotbench speaks, defined once, one module per interface (named after its
uapi header or sysfs directory). Nothing outside this package writes an ioctl number,
struct layout or sysfs path of its own.
"""
