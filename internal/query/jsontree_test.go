package query

import (
	"bytes"
	"fmt"
	"slices"
)

// jnode is a JSON value that keeps the bytes of its scalars and the order of its object
// keys, so that answers can be normalized (unordered arrays sorted, volatile fields
// cleared) and still compared byte for byte.
type jnode struct {
	raw  []byte // scalar: its bytes as written
	obj  []jfield
	arr  []*jnode
	kind byte // 's' scalar, 'o' object, 'a' array
}

type jfield struct {
	key string // as written, quotes and escapes included
	val *jnode
}

func parseJSON(b []byte) (*jnode, error) {
	p := &jparser{b: b}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("trailing data at %d", p.i)
	}
	return n, nil
}

type jparser struct {
	b []byte
	i int
}

func (p *jparser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *jparser) value() (*jnode, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, fmt.Errorf("unexpected end")
	}
	switch p.b[p.i] {
	case '{':
		p.i++
		n := &jnode{kind: 'o'}
		for {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				return n, nil
			}
			if len(n.obj) > 0 {
				if p.b[p.i] != ',' {
					return nil, fmt.Errorf("expected , at %d", p.i)
				}
				p.i++
				p.ws()
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, fmt.Errorf("expected : at %d", p.i)
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			n.obj = append(n.obj, jfield{key: string(k), val: v})
		}
	case '[':
		p.i++
		n := &jnode{kind: 'a', arr: []*jnode{}}
		for {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return n, nil
			}
			if len(n.arr) > 0 {
				if p.b[p.i] != ',' {
					return nil, fmt.Errorf("expected , at %d", p.i)
				}
				p.i++
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			n.arr = append(n.arr, v)
		}
	case '"':
		s, err := p.str()
		return &jnode{kind: 's', raw: s}, err
	default:
		start := p.i
		for p.i < len(p.b) && bytes.IndexByte([]byte(",]} \n\t\r"), p.b[p.i]) < 0 {
			p.i++
		}
		return &jnode{kind: 's', raw: p.b[start:p.i]}, nil
	}
}

// str returns a string's bytes, quotes included.
func (p *jparser) str() ([]byte, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, fmt.Errorf("expected string at %d", p.i)
	}
	start := p.i
	p.i++
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
		case '"':
			p.i++
			return p.b[start:p.i], nil
		default:
			p.i++
		}
	}
	return nil, fmt.Errorf("unterminated string")
}

func (n *jnode) encode(b []byte) []byte {
	switch n.kind {
	case 'o':
		b = append(b, '{')
		for i, f := range n.obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, f.key...)
			b = append(b, ':')
			b = f.val.encode(b)
		}
		return append(b, '}')
	case 'a':
		b = append(b, '[')
		for i, v := range n.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.encode(b)
		}
		return append(b, ']')
	}
	return append(b, n.raw...)
}

func (n *jnode) String() string { return string(n.encode(nil)) }

// get returns the value of key in an object, or nil.
func (n *jnode) get(key string) *jnode {
	if n == nil || n.kind != 'o' {
		return nil
	}
	for _, f := range n.obj {
		if f.key == `"`+key+`"` {
			return f.val
		}
	}
	return nil
}

// del removes key from an object.
func (n *jnode) del(key string) {
	if n == nil || n.kind != 'o' {
		return
	}
	n.obj = slices.DeleteFunc(n.obj, func(f jfield) bool { return f.key == `"`+key+`"` })
}

// set replaces the value of key in an object.
func (n *jnode) set(key string, v *jnode) {
	for i, f := range n.obj {
		if f.key == `"`+key+`"` {
			n.obj[i].val = v
		}
	}
}

// sortArray sorts an array by the encoding of its elements.
func (n *jnode) sortArray() {
	if n == nil || n.kind != 'a' {
		return
	}
	slices.SortStableFunc(n.arr, func(x, y *jnode) int { return bytes.Compare(x.encode(nil), y.encode(nil)) })
}

func scalar(s string) *jnode { return &jnode{kind: 's', raw: []byte(s)} }
