"""Interfaces: command line (and later HTTP and the web page); no ML logic here."""
