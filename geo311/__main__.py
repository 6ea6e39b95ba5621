"""``python -m geo311``: the ``geo311`` command."""

from geo311.launch import main

main()
