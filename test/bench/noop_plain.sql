-- the same C no-op without SECURITY DEFINER and SET search_path
\set i random(1, 100000)
SELECT * FROM bench.noop_plain('bench', 'user_' || :i);
