package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The user, role and auth commands, shaped like etcdctl 3.6's: the same
// arguments, flags, messages, exit codes and output in every format.

// addAuthCommands registers the auth commands.
func addAuthCommands(root *cobra.Command, s streams) {
	for _, cmd := range []*cobra.Command{newUserCommand(s), newRoleCommand(s), newAuthCommand(s)} {
		cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
			return ctlError(exitError, err)
		})
		root.AddCommand(cmd)
	}
}

// authRun makes the client and runs fn with a request context, as every
// auth subcommand does after checking its arguments.
func authRun(cmd *cobra.Command, s streams, g *ctlFlags, fn func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error) error {
	sess, err := newCtlSession(cmd, s, g, noOutput)
	if err != nil {
		return err
	}
	cli, err := sess.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := sess.commandContext(cmd.Context())
	defer cancel()
	return fn(ctx, sess, cli)
}

// authOutput is one auth response in every format: simple writes the
// simple format, fields the fields format (nil: etcdctl has none for this
// response), and msg is the response etcdctl encodes for json and
// protobuf.
type authOutput struct {
	simple func(w io.Writer)
	fields func(p *fieldsPrinter)
	msg    interface{ Marshal() ([]byte, error) }
}

// printAuth prints o in the session's format. Like etcdctl, it is only
// after the request that an unsupported format is reported.
func (c *ctlSession) printAuth(o authOutput) error {
	switch p := c.printer.(type) {
	case *simplePrinter:
		o.simple(c.s.out)
	case *fieldsPrinter:
		if o.fields == nil {
			return ctlErrorf(exitBadFeature, "fields not supported as output format")
		}
		o.fields(p)
	case *jsonPrinter:
		p.print(o.msg)
	case *protobufPrinter:
		p.print(o.msg)
	default:
		return ctlErrorf(exitBadFeature, "table not supported as output format")
	}
	return nil
}

func newUserCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "user <subcommand>", Short: "User related commands"}
	g := newCtlFlags(cmd.PersistentFlags())

	var interactive, noPassword, detail bool
	var newPassword string
	add := &cobra.Command{
		Use:   "add <user name or user:password> [options]",
		Short: "Adds a new user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "user add command requires user name as its argument")
			}
			var user, password string
			opts := &clientv3.UserAddOptions{}
			switch {
			case noPassword:
				user = args[0]
				opts.NoPassword = true
			case newPassword != "":
				user, password = args[0], newPassword
			default:
				name, pass, ok := strings.Cut(args[0], ":")
				if !ok {
					user = args[0]
					var err error
					if password, err = readNewPassword(s, args[0], interactive); err != nil {
						return err
					}
				} else {
					user, password = name, pass
					if user == "" {
						return ctlErrorf(exitBadArgs, "empty user name is not allowed")
					}
				}
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserAddWithOptions(ctx, user, password, opts)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintf(w, "User %s created\n", user) },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthUserAddResponse)(resp),
				})
			})
		},
	}
	add.Flags().BoolVar(&interactive, "interactive", true, "Read password from stdin instead of interactive terminal")
	add.Flags().StringVar(&newPassword, "new-user-password", "", "Supply password from the command line flag")
	add.Flags().BoolVar(&noPassword, "no-password", false, "Create a user without password (CN based auth only)")

	del := &cobra.Command{
		Use:   "delete <user name>",
		Short: "Deletes a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "user delete command requires user name as its argument")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserDelete(ctx, args[0])
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintf(w, "User %s deleted\n", args[0]) },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthUserDeleteResponse)(resp),
				})
			})
		},
	}

	get := &cobra.Command{
		Use:   "get <user name> [options]",
		Short: "Gets detailed information of a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "user get command requires user name as its argument")
			}
			name := args[0]
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserGet(ctx, name)
				if err != nil {
					return rpcError(err)
				}
				if !detail {
					return sess.printAuth(authOutput{
						simple: func(w io.Writer) {
							fmt.Fprintf(w, "User: %s\n", name)
							fmt.Fprint(w, "Roles:")
							for _, r := range resp.Roles {
								fmt.Fprintf(w, " %s", r)
							}
							fmt.Fprint(w, "\n")
						},
						msg: (*pb.AuthUserGetResponse)(resp),
					})
				}
				fmt.Fprintf(s.out, "User: %s\n", name)
				for _, role := range resp.Roles {
					fmt.Fprint(s.out, "\n")
					rr, err := cli.RoleGet(ctx, role)
					if err != nil {
						return rpcError(err)
					}
					if err := sess.printAuth(roleGetOutput(role, rr)); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	get.Flags().BoolVar(&detail, "detail", false, "Show permissions of roles granted to the user")

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists all users",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "user list command requires no arguments")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserList(ctx)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) {
						for _, u := range resp.Users {
							fmt.Fprintf(w, "%s\n", u)
						}
					},
					msg: (*pb.AuthUserListResponse)(resp),
				})
			})
		},
	}

	var passwdInteractive bool
	passwd := &cobra.Command{
		Use:   "passwd <user name> [options]",
		Short: "Changes password of user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "user passwd command requires user name as its argument")
			}
			password, err := readNewPassword(s, args[0], passwdInteractive)
			if err != nil {
				return err
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserChangePassword(ctx, args[0], password)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintln(w, "Password updated") },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthUserChangePasswordResponse)(resp),
				})
			})
		},
	}
	passwd.Flags().BoolVar(&passwdInteractive, "interactive", true, "If true, read password from stdin instead of interactive terminal")

	grant := &cobra.Command{
		Use:   "grant-role <user name> <role name>",
		Short: "Grants a role to a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return ctlErrorf(exitBadArgs, "user grant command requires user name and role name as its argument")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserGrantRole(ctx, args[0], args[1])
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintf(w, "Role %s is granted to user %s\n", args[1], args[0]) },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthUserGrantRoleResponse)(resp),
				})
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke-role <user name> <role name>",
		Short: "Revokes a role from a user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return ctlErrorf(exitBadArgs, "user revoke-role requires user name and role name as its argument")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.UserRevokeRole(ctx, args[0], args[1])
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintf(w, "Role %s is revoked from user %s\n", args[1], args[0]) },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthUserRevokeRoleResponse)(resp),
				})
			})
		},
	}
	cmd.AddCommand(add, del, get, list, passwd, grant, revoke)
	return cmd
}

// readNewPassword reads a new user's password as etcdctl does: twice, with
// prompts on stdout, from an interactive terminal (without echo); or, with
// --interactive=false, the first word of stdin with no prompt.
func readNewPassword(s streams, name string, interactive bool) (string, error) {
	in := ctlStdin(s.in)
	if !interactive {
		line, _ := readLine(in)
		if f := strings.Fields(line); len(f) > 0 {
			return f[0], nil
		}
		return "", nil
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(s.out, prompt)
		defer fmt.Fprintln(s.out)
		if f, ok := in.(*os.File); ok {
			if restore, err := ctlDisableEcho(f); err == nil {
				defer restore()
			}
		}
		line, err := readLine(in)
		if err != nil && line == "" && !errors.Is(err, io.EOF) {
			return "", ctlErrorf(exitBadArgs, "failed to ask password: failed during password entry: %v", err)
		}
		return strings.TrimSpace(line), nil
	}
	p1, err := ask(fmt.Sprintf("Password of %s: ", name))
	if err != nil {
		return "", err
	}
	if p1 == "" {
		return "", ctlErrorf(exitBadArgs, "empty password")
	}
	p2, err := ask(fmt.Sprintf("Type password of %s again for confirmation: ", name))
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", ctlErrorf(exitBadArgs, "given passwords are different")
	}
	return p1, nil
}

// readLine reads one line byte by byte, leaving the rest of r unread.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			return strings.TrimSuffix(string(line), "\r"), err
		}
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}

// roleGetOutput is a role's permissions in every format.
func roleGetOutput(role string, r *clientv3.AuthRoleGetResponse) authOutput {
	return authOutput{
		simple: func(w io.Writer) {
			fmt.Fprintf(w, "Role %s\n", role)
			if role == "root" && r.Perm == nil {
				fmt.Fprintln(w, "KV Read:")
				fmt.Fprintln(w, "\t[, <open ended>")
				fmt.Fprintln(w, "KV Write:")
				fmt.Fprintln(w, "\t[, <open ended>")
				return
			}
			printRange := func(p *clientv3.Permission) {
				key, end := string(p.Key), string(p.RangeEnd)
				if end != "\x00" {
					fmt.Fprintf(w, "\t[%s, %s)", key, end)
				} else {
					fmt.Fprintf(w, "\t[%s, <open ended>", key)
				}
				if clientv3.GetPrefixRangeEnd(key) == end && len(key) > 0 {
					fmt.Fprintf(w, " (prefix %s)", key)
				}
				fmt.Fprint(w, "\n")
			}
			section := func(title string, types ...authpb.Permission_Type) {
				fmt.Fprintln(w, title)
				for _, p := range r.Perm {
					for _, t := range types {
						if p.PermType != t {
							continue
						}
						if len(p.RangeEnd) == 0 {
							fmt.Fprintf(w, "\t%s\n", p.Key)
						} else {
							printRange((*clientv3.Permission)(p))
						}
					}
				}
			}
			section("KV Read:", clientv3.PermRead, clientv3.PermReadWrite)
			section("KV Write:", clientv3.PermWrite, clientv3.PermReadWrite)
		},
		fields: func(p *fieldsPrinter) {
			p.header(r.Header)
			for _, perm := range r.Perm {
				fmt.Fprintln(p.out, `"PermType" : `, perm.PermType.String())
				fmt.Fprintf(p.out, "\"Key\" : %q\n", string(perm.Key))
				fmt.Fprintf(p.out, "\"RangeEnd\" : %q\n", string(perm.RangeEnd))
			}
		},
		msg: (*pb.AuthRoleGetResponse)(r),
	}
}

// permRange turns role permission arguments (<key> [endkey]) and --prefix
// or --from-key into a key and range end, as etcdctl does: an empty key
// means every key ("\x00"); with --prefix or --from-key it is open ended.
func permRange(args []string, prefix, fromKey bool) (key, rangeEnd string, err error) {
	key = args[0]
	if key == "" {
		if prefix && fromKey {
			return "", "", errors.New("--from-key and --prefix flags are mutually exclusive")
		}
		key = "\x00"
		if prefix || fromKey {
			rangeEnd = "\x00"
		}
		return key, rangeEnd, nil
	}
	if len(args) == 1 {
		switch {
		case prefix && fromKey:
			return "", "", errors.New("--from-key and --prefix flags are mutually exclusive")
		case prefix:
			return key, clientv3.GetPrefixRangeEnd(key), nil
		case fromKey:
			return key, "\x00", nil
		}
		return key, "", nil
	}
	if prefix {
		return "", "", errors.New("unexpected endkey argument with --prefix flag")
	}
	if fromKey {
		return "", "", errors.New("unexpected endkey argument with --from-key flag")
	}
	return key, args[1], nil
}

func newRoleCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "role <subcommand>", Short: "Role related commands"}
	g := newCtlFlags(cmd.PersistentFlags())

	oneRole := func(use, short, argErr string, run func(ctx context.Context, sess *ctlSession, cli *clientv3.Client, role string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) != 1 {
					return ctlErrorf(exitBadArgs, "%s", argErr)
				}
				return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
					return run(ctx, sess, cli, args[0])
				})
			},
		}
	}
	add := oneRole("add <role name>", "Adds a new role", "role add command requires role name as its argument",
		func(ctx context.Context, sess *ctlSession, cli *clientv3.Client, role string) error {
			resp, err := cli.RoleAdd(ctx, role)
			if err != nil {
				return rpcError(err)
			}
			return sess.printAuth(authOutput{
				simple: func(w io.Writer) { fmt.Fprintf(w, "Role %s created\n", role) },
				fields: func(p *fieldsPrinter) { p.header(resp.Header) },
				msg:    (*pb.AuthRoleAddResponse)(resp),
			})
		})
	del := oneRole("delete <role name>", "Deletes a role", "role delete command requires role name as its argument",
		func(ctx context.Context, sess *ctlSession, cli *clientv3.Client, role string) error {
			resp, err := cli.RoleDelete(ctx, role)
			if err != nil {
				return rpcError(err)
			}
			return sess.printAuth(authOutput{
				simple: func(w io.Writer) { fmt.Fprintf(w, "Role %s deleted\n", role) },
				fields: func(p *fieldsPrinter) { p.header(resp.Header) },
				msg:    (*pb.AuthRoleDeleteResponse)(resp),
			})
		})
	get := oneRole("get <role name>", "Gets detailed information of a role", "role get command requires role name as its argument",
		func(ctx context.Context, sess *ctlSession, cli *clientv3.Client, role string) error {
			resp, err := cli.RoleGet(ctx, role)
			if err != nil {
				return rpcError(err)
			}
			return sess.printAuth(roleGetOutput(role, resp))
		})
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists all roles",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "role list command requires no arguments")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.RoleList(ctx)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) {
						for _, r := range resp.Roles {
							fmt.Fprintf(w, "%s\n", r)
						}
					},
					fields: func(p *fieldsPrinter) {
						p.header(resp.Header)
						fmt.Fprint(p.out, `"Roles" :`)
						for _, r := range resp.Roles {
							fmt.Fprintf(p.out, " %q", r)
						}
						fmt.Fprintln(p.out)
					},
					msg: (*pb.AuthRoleListResponse)(resp),
				})
			})
		},
	}

	var grantPrefix, grantFromKey bool
	grant := &cobra.Command{
		Use:   "grant-permission [options] <role name> <permission type> <key> [endkey]",
		Short: "Grants a key to a role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 {
				return ctlErrorf(exitBadArgs, "role grant command requires role name, permission type, and key [endkey] as its argument")
			}
			perm, err := clientv3.StrToPermissionType(args[1])
			if err != nil {
				return ctlError(exitBadArgs, err)
			}
			key, end, err := permRange(args[2:], grantPrefix, grantFromKey)
			if err != nil {
				return ctlError(exitBadArgs, err)
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.RoleGrantPermission(ctx, args[0], key, end, perm)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) { fmt.Fprintf(w, "Role %s updated\n", args[0]) },
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthRoleGrantPermissionResponse)(resp),
				})
			})
		},
	}
	grant.Flags().BoolVar(&grantPrefix, "prefix", false, "grant a prefix permission")
	grant.Flags().BoolVar(&grantFromKey, "from-key", false, "grant a permission of keys that are greater than or equal to the given key using byte compare")

	var revokePrefix, revokeFromKey bool
	revoke := &cobra.Command{
		Use:   "revoke-permission <role name> <key> [endkey]",
		Short: "Revokes a key from a role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return ctlErrorf(exitBadArgs, "role revoke-permission command requires role name and key [endkey] as its argument")
			}
			key, end, err := permRange(args[1:], revokePrefix, revokeFromKey)
			if err != nil {
				return ctlError(exitBadArgs, err)
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.RoleRevokePermission(ctx, args[0], key, end)
				if err != nil {
					return rpcError(err)
				}
				// etcdctl names the key as given on the command line.
				shown := args[1]
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) {
						switch {
						case end == "":
							fmt.Fprintf(w, "Permission of key %s is revoked from role %s\n", shown, args[0])
						case end != "\x00":
							fmt.Fprintf(w, "Permission of range [%s, %s) is revoked from role %s\n", shown, end, args[0])
						default:
							fmt.Fprintf(w, "Permission of range [%s, <open ended> is revoked from role %s\n", shown, args[0])
						}
					},
					fields: func(p *fieldsPrinter) { p.header(resp.Header) },
					msg:    (*pb.AuthRoleRevokePermissionResponse)(resp),
				})
			})
		},
	}
	revoke.Flags().BoolVar(&revokePrefix, "prefix", false, "revoke a prefix permission")
	revoke.Flags().BoolVar(&revokeFromKey, "from-key", false, "revoke a permission of keys that are greater than or equal to the given key using byte compare")

	cmd.AddCommand(add, del, get, list, grant, revoke)
	return cmd
}

func newAuthCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "auth <enable or disable>", Short: "Enable or disable authentication"}
	g := newCtlFlags(cmd.PersistentFlags())
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Enables authentication",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "auth enable command does not accept any arguments")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				// As etcdctl: a root user without the root role gets it,
				// creating the role if need be.
				var err error
				for err == nil {
					if _, err = cli.AuthEnable(ctx); err == nil {
						break
					}
					if errors.Is(err, rpctypes.ErrRootRoleNotExist) {
						if _, err = cli.RoleAdd(ctx, "root"); err != nil {
							break
						}
						if _, err = cli.UserGrantRole(ctx, "root", "root"); err != nil {
							break
						}
					}
				}
				if err != nil {
					return rpcError(err)
				}
				fmt.Fprintln(s.out, "Authentication Enabled")
				return nil
			})
		},
	}
	disable := &cobra.Command{
		Use:   "disable",
		Short: "Disables authentication",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "auth disable command does not accept any arguments")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				if _, err := cli.AuthDisable(ctx); err != nil {
					return rpcError(err)
				}
				fmt.Fprintln(s.out, "Authentication Disabled")
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Returns authentication status",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "auth status command does not accept any arguments")
			}
			return authRun(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.AuthStatus(ctx)
				if err != nil {
					return rpcError(err)
				}
				return sess.printAuth(authOutput{
					simple: func(w io.Writer) {
						fmt.Fprintln(w, "Authentication Status:", resp.Enabled)
						fmt.Fprintln(w, "AuthRevision:", resp.AuthRevision)
					},
					msg: (*pb.AuthStatusResponse)(resp),
				})
			})
		},
	}
	cmd.AddCommand(enable, disable, status)
	return cmd
}
