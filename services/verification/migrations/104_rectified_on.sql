-- The day (Asia/Shanghai) the rectification now waiting for its verdict was reported: one
-- reported on or before the deadline holds the clock (domain::overdue_since).
ALTER TABLE verification.problems ADD COLUMN rectified_on date;
UPDATE verification.problems p
   SET rectified_on = (SELECT (max(r.reported_at) AT TIME ZONE 'Asia/Shanghai')::date
                         FROM verification.rectifications r WHERE r.problem_id = p.problem_id)
 WHERE p.status = 'rectification_reported';
