"""hotbench: how accurately, and at what cost, does a kernel mechanism find the pages in use?"""

__version__ = "0.1.0"
