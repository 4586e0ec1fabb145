-- The sessions opened for OpenID clients (by redeeming a code): deleting the client ends them.
CREATE TABLE oauth_sessions (
    session_id UUID PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    client_id UUID NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE
);
CREATE INDEX oauth_sessions_client ON oauth_sessions (client_id);
