"""Interfaces: the command line (cli/), the HTTP service (http/) and its web page (web/); no ML logic here."""
