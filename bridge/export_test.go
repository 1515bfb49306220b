package bridge

// HeldObjects is how many Go values the peer holds references to (the object table).
func HeldObjects(c *Conn) int { return c.objects.len() }
