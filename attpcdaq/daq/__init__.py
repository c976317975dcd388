"""The Django app of the hardware model, runs and control of the DAQ."""
