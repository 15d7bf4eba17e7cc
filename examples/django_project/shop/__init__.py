"""A small Django shop that also receives IronMQ pushes (see ``shop/pushes.py``)."""
