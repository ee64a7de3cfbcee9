-- a trivial SECURITY DEFINER function: the cost of the call and its SET clause
SELECT bench.noop();
