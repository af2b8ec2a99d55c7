package schema

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/tributary-sync/tributary/core"
)

// Errors of access, wrapped with the role and collection involved.
var (
	// ErrRole: a role the schema does not declare, or one that may not do
	// what was asked (write a collection, be given by an invite).
	ErrRole = errors.New("role not allowed")
)

var typeDirectives = map[string]bool{"collection": true, "write": true, "create": true, "update": true, "delete": true}

// parseRoles reads extend schema @roles(names: ["reader", "librarian"]).
func (s *Schema) parseRoles(exts ast.SchemaDefinitionList) error {
	seen := false
	for _, ext := range exts {
		if len(ext.OperationTypes) > 0 {
			return fmt.Errorf("%w: extend schema takes only @roles(names: [...]), no operation types", ErrInvalid)
		}
		for _, dir := range ext.Directives {
			if dir.Name != "roles" {
				return fmt.Errorf("%w: extend schema: unknown directive @%s (only @roles(names: [...]))", ErrInvalid, dir.Name)
			}
			if seen {
				return fmt.Errorf("%w: @roles is given twice", ErrInvalid)
			}
			seen = true
			args, err := directiveArgs(dir)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			names, ok := stringList(args["names"])
			if !ok || len(args) != 1 {
				return fmt.Errorf(`%w: @roles wants one argument names: ["role", ...]`, ErrInvalid)
			}
			for _, n := range names {
				if err := core.CheckRoleName(n); err != nil {
					return fmt.Errorf("%w: @roles: %v", ErrInvalid, err)
				}
				switch {
				case n == core.RoleAdmin || n == core.RoleInvite:
					return fmt.Errorf("%w: @roles: %q is reserved", ErrInvalid, n)
				case slices.Contains(s.Roles, n):
					return fmt.Errorf("%w: @roles: %q is declared twice", ErrInvalid, n)
				}
				s.Roles = append(s.Roles, n)
			}
		}
	}
	return nil
}

func stringList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// typeDirectives reads @write, @create, @update and @delete of a type.
func (s *Schema) typeDirectives(c *Collection, d *ast.Definition) error {
	seen := map[string]bool{}
	for _, dir := range d.Directives {
		if dir.Name == "collection" {
			continue
		}
		if seen[dir.Name] {
			return fmt.Errorf("%w: type %s: @%s given twice", ErrInvalid, c.Name, dir.Name)
		}
		seen[dir.Name] = true
		args, err := directiveArgs(dir)
		if err != nil {
			return fmt.Errorf("%w: type %s: %v", ErrInvalid, c.Name, err)
		}
		switch dir.Name {
		case "write":
			roles, ok := stringList(args["roles"])
			if !ok || len(args) != 1 {
				return fmt.Errorf(`%w: type %s: @write wants one argument roles: ["role", ...]`, ErrInvalid, c.Name)
			}
			c.Writers = []string{}
			for _, r := range roles {
				switch {
				case r == core.RoleReader:
					return fmt.Errorf("%w: type %s: @write: role %q reads but never writes", ErrInvalid, c.Name, r)
				case r == core.RoleAdmin:
					continue // admin always may
				case !s.HasRole(r):
					return fmt.Errorf("%w: type %s: @write: role %q is not declared (extend schema @roles(names: [...]))", ErrInvalid, c.Name, r)
				}
				if !slices.Contains(c.Writers, r) {
					c.Writers = append(c.Writers, r)
				}
			}
		default:
			text, ok := args["if"].(string)
			if !ok || len(args) != 1 {
				return fmt.Errorf(`%w: type %s: @%s wants one argument if: "condition"`, ErrInvalid, c.Name, dir.Name)
			}
			action := map[string]Action{"create": ActionCreate, "update": ActionUpdate, "delete": ActionDelete}[dir.Name]
			r, err := s.compileRule(c.Name, action, text)
			if err != nil {
				return fmt.Errorf("%w: type %s: @%s(if): %v", ErrInvalid, c.Name, dir.Name, err)
			}
			c.rules[action] = r
			s.rules++
		}
	}
	return nil
}

// index records that rules look documents of coll up by field.
func (s *Schema) index(coll, field string) {
	if !slices.Contains(s.indexed[coll], field) {
		s.indexed[coll] = append(s.indexed[coll], field)
		slices.Sort(s.indexed[coll])
	}
}

// HasRules reports whether any collection has a @create, @update or
// @delete rule. A schema without rules costs its writes nothing.
func (s *Schema) HasRules() bool { return s != nil && s.rules > 0 }

// Indexed returns the fields of coll that rules look documents up by
// (sorted), so a replica indexes their values.
func (s *Schema) Indexed(coll string) []string {
	if s == nil {
		return nil
	}
	return s.indexed[coll]
}

// HasRole reports whether role is built in (admin, writer, reader) or
// declared.
func (s *Schema) HasRole(role string) bool {
	switch role {
	case core.RoleAdmin, core.RoleWriter, core.RoleReader:
		return true
	}
	return slices.Contains(s.Roles, role)
}

// CheckWrite decides whether role may write documents of coll: admin
// always; reader never; a role the schema does not declare never; the
// others when coll has no @write or its @write lists them.
func (s *Schema) CheckWrite(role, coll string) error {
	switch {
	case role == core.RoleAdmin:
		return nil
	case role == core.RoleReader:
		return fmt.Errorf("%w: role %q reads but never writes", ErrRole, role)
	case !s.HasRole(role):
		return fmt.Errorf("%w: role %q is not declared by the schema in force", ErrRole, role)
	}
	c, ok := s.Collection(coll)
	if !ok || c.Writers == nil || slices.Contains(c.Writers, role) {
		return nil
	}
	return fmt.Errorf("%w: role %q may not write %s (@write(roles: %q))", ErrRole, role, coll, c.Writers)
}

// CheckGrant decides whether role may be granted (or offered by an invite
// when invite is set) under this schema.
func (s *Schema) CheckGrant(role string, invite bool) error {
	if err := core.CheckRoleName(role); err != nil {
		return fmt.Errorf("%w: %v", ErrRole, err)
	}
	switch {
	case invite && (role == core.RoleAdmin || role == core.RoleInvite):
		return fmt.Errorf("%w: an invite cannot grant %q", ErrRole, role)
	case !invite && role == core.RoleInvite:
		return fmt.Errorf("%w: %q is the role of an invite key (make an invite instead)", ErrRole, role)
	case !s.HasRole(role):
		return fmt.Errorf("%w: role %q is not declared by the schema (known: admin, writer, reader%s)", ErrRole, role, declared(s.Roles))
	}
	return nil
}

func declared(roles []string) string {
	out := ""
	for _, r := range roles {
		if r != core.RoleReader && r != core.RoleWriter {
			out += ", " + r
		}
	}
	return out
}
