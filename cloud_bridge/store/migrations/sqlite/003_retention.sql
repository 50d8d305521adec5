-- Retention (issue 12): the bridge prunes the oldest rows of the logs and of rejections in small
-- batches; these indexes let each batch find its rows without scanning the table.
CREATE INDEX events_received ON events (received_ms);
CREATE INDEX session_events_received ON session_events (received_ms);
CREATE INDEX rejections_received ON rejections (received_ms);
