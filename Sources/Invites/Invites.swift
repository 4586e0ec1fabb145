// Invites
