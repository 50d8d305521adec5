"""Cloud-side risk: the bridge's own view of every device event, never the device's word.

    server_score   rescore each report's fingerprint against the enrolled baseline with the
                   same model; the device's features and risk_pm are only checked (tamper codes)
    calibration    per-kind thresholds on the model's output q, from measured genuine rates
    verdict        allow / step_up / hold / freeze from the server score, tamper codes, the
                   freeze streak and the bridge's clone signals (seq conflict, boot regression)
    signals        the per-device signals of every event (clone, clock skew, fingerprint
                   distance and drift, travel) and the device's re-centred thresholds, from the
                   memory the store keeps with the device; evidence and points for the verdict
    policy         [risk_signals]: every weight and threshold of the signals, declared once
    stepup         a pending step-up as a function of the user's confirmation and the clock
                   (its I/O: cloud_bridge.stepups)
    setup          the model and thresholds of bridge.toml (the only I/O here, once at start)

fingerprint, skew, clone, travel, sequence and touch are the signals' methods, each a pure
module with its evaluation (tools.eval_risk). docs/risk.md has the methods and their measured
figures.
"""
