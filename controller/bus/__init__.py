"""The site bus as the controller sees it: generated codecs (candb, from dbc/), end-to-end
protection, received-input checks and supervision, transmitted frames, and the CAN ports."""
