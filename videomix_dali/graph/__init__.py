"""The DALI graphs, per device and mode: the only package that builds them.

``build`` assembles the video and feature graphs, ``ops`` the mixing steps made of DALI
operators, ``cpu_plugin`` the CPU crop/resize/paste/normalise operator of ``kernels/``."""
