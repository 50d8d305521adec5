"""Cloud-side risk: the bridge's own view of every device event, never the device's word.

    server_score   rescore each report's fingerprint against the enrolled baseline with the
                   same model; the device's features and risk_pm are only checked (tamper codes)
    calibration    per-kind thresholds on the model's output q, from measured genuine rates
    verdict        allow / step_up / hold / freeze from the server score, tamper codes, the
                   freeze streak and the bridge's clone signals (seq conflict, boot regression)
    stepup         a pending step-up as a function of the user's confirmation and the clock
    setup          the model and thresholds of bridge.toml (the only I/O here, once at start)

Further signals (fingerprint drift, clock skew, impossible travel, sequence plausibility) plug in
as modules of their own, each adding reason codes to the verdict. docs/risk.md has the methods
and their measured figures.
"""
