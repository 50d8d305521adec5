"""Cloud-side risk: combine the device's own score with what only the cloud can see.

Today: thresholds on the on-device risk score with a streak before freezing, and hard signals
from the bridge (a sequence number reused with different content means a copied key on another
board; a boot counter that goes backwards). Further analytics (fingerprint drift, clock-skew
fingerprint, impossible travel, Markov plausibility) plug in here as further signals with their
own modules.
"""
