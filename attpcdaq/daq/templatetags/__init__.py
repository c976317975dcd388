"""Template tags of the DAQ pages."""
