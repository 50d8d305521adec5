-- Server-side scoring (issue 13): the bridge's own score (model output q) of each device's
-- newest report and the tamper codes of that report, so a trigger is judged on the server's
-- score, not on the risk_pm the device puts in it. NULL: no report scored yet.
ALTER TABLE devices ADD COLUMN risk_q INTEGER;
ALTER TABLE devices ADD COLUMN risk_tamper TEXT NOT NULL DEFAULT '';
