-- 024: the milters' changes to a streamed receipt (issue 18).
--
-- A message bigger than one chunk is stored in state 0 while it arrives, and
-- the milters' end-of-message verdict comes after its last chunk. Their
-- changes (envelope sender, recipients, a replaced body, quarantine) must be
-- in the queue before the 0 -> 1 commit, in the same transaction. Since 018
-- the listener may not write recipients or envelopes itself; this function
-- does it, for the caller's own receipt in state 0 only, so a listener still
-- cannot touch a message it did not receive or one already committed. The
-- changed header section needs nothing new: the listener writes it as body
-- chunk 0 under its listener_stream policy.
CREATE FUNCTION edit_receipt(p_id bigint, p_sender text, p_rcpts text[], p_held_reason text, p_drop_first integer,
                             p_drop_last integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM 1 FROM messages WHERE id = p_id AND state = 0 AND receipt_owner = session_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'edit_receipt: message % is not a receipt of this login in state 0', p_id;
    END IF;
    IF p_sender IS NOT NULL THEN
        UPDATE messages SET envelope_from = p_sender WHERE id = p_id;
    END IF;
    IF p_rcpts IS NOT NULL THEN
        IF cardinality(p_rcpts) = 0 THEN
            RAISE EXCEPTION 'edit_receipt: message % would have no recipients', p_id;
        END IF;
        DELETE FROM recipients WHERE message_id = p_id;
        INSERT INTO recipients (message_id, seq, address)
        SELECT p_id, r.ord - 1, r.address FROM unnest(p_rcpts) WITH ORDINALITY AS r(address, ord);
    END IF;
    IF p_held_reason IS NOT NULL THEN
        UPDATE messages SET held = true, held_reason = p_held_reason WHERE id = p_id;
    END IF;
    IF p_drop_last >= p_drop_first THEN
        DELETE FROM body_chunks WHERE message_id = p_id AND seq BETWEEN p_drop_first AND p_drop_last;
    END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION edit_receipt(bigint, text, text[], text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edit_receipt(bigint, text, text[], text, integer, integer) TO wsmtp_listener, wsmtp_admin;

COMMENT ON FUNCTION edit_receipt(bigint, text, text[], text, integer, integer) IS 'The milters'' changes to the caller''s own receipt in state 0, in its commit transaction:
a new envelope sender (NULL: unchanged), the whole new recipient list (NULL: unchanged;
never empty), held with a reason (quarantine; NULL: not held), and body chunks
p_drop_first..p_drop_last deleted (a replaced body; none when p_drop_last < p_drop_first).
SECURITY DEFINER because the listener may not write envelopes or recipients itself (018).';
