package proxy

// TableLookupQuery is the query a control connection asks about a table.
func TableLookupQuery(schema, table string) string { return tableLookupQuery(schema, table) }

// HandOffLegs reports, for each open session with a backend, whether its
// client and backend legs hand their CPU to the peer after a flush
// (wire.Conn.HandOff). Read it after the session has answered a command:
// the legs are set up by then.
func (s *Server) HandOffLegs() (legs [][2]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if sess.client != nil && sess.backend != nil {
			legs = append(legs, [2]bool{sess.client.HandOff, sess.backend.HandOff})
		}
	}
	return legs
}
