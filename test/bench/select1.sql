-- the floor: one round trip that does nothing
SELECT 1;
