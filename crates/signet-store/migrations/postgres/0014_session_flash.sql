-- A page a form post answered, kept for the one GET its redirect leads to (Post/Redirect/Get):
-- reload and Back then never re-post a form. It may show what the person typed, so it is
-- sealed under the CA folder's sealing key and bound to its session; NULL when there is none.
ALTER TABLE web_sessions ADD COLUMN flash TEXT;
