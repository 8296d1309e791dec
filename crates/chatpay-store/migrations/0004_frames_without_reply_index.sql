-- The (conversation_id, reply_to) index cost more than it saved. Every batch of turns touched one
-- of its pages per conversation, hundreds of 4 KiB pages written per commit, and dropping it
-- raised durable turns per second by about 40%. Its two readers (the ids a conversation has
-- answered, read when the conversation loads, and the frames of a retried id) now walk the
-- conversation's frames through the primary key instead.
DROP INDEX frames_by_reply;
