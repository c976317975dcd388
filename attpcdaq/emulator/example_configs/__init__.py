"""Example configuration files of an emulated ECC server (a package so they get installed)."""
