/*
 * census-login: the browser login page (NSP 2021 samospis).
 *
 * Plain JavaScript, no framework, no inline code (the CSP allows only 'self' scripts).
 * Screens are <section> elements shown one at a time; the URL fragment names the
 * screen so the browser's back button works. The API is described in
 * shared/spec/API.md: errors are RFC 9457 problem details with a stable `code`,
 * which is mapped here to our own Polish wording (the API's `detail`/`message`
 * is used only for codes we do not know).
 */
(function () {
  'use strict';

  var TZ = 'Europe/Warsaw';

  // Used until GET /api/v1/meta answers (and if it never does).
  var meta = {
    passwordPolicy: { minLength: 8, maxLength: 128, requireUppercase: true, requireDigit: true, asciiOnly: true },
    surveyWindowDays: 14,
    censusOpensAt: null,
    censusClosesAt: null,
    helpline: '+48 22 279 99 99',
    maxFailures: 5,
    baseBlockSeconds: 3600,
    loginGovUrl: 'https://login.gov.pl/',
    nationalNode: false,  // true: the card starts a login.gov.pl login here (/saml/login)
    formUrl: 'https://spis.gov.pl/'
  };

  var state = {
    current: 'loading',
    session: null,
    sessionIntro: null,   // 'defined' | 'login' | 'reclaimed' | null (restored on page load)
    reference: null,      // last no-PESEL request reference
    busy: false,
    pendingAlert: {},     // screen -> alert to show when that screen opens
    authz: null,          // id of a waiting authorization request (?authz=), see continueAuthz
    clientName: null      // the service that asked for this login
  };

  var ROUTES = {
    '': 'method',
    '#': 'method',
    '#pesel': 'login',
    '#definiuj-haslo': 'define',
    '#bez-pesel': 'nopesel',
    '#zgloszenie-przyjete': 'nopesel-done',
    '#zalogowano': 'session',
    '#wlasne-haslo': 'reclaim'
  };
  var HASH_OF = {
    method: '', login: '#pesel', define: '#definiuj-haslo', nopesel: '#bez-pesel',
    'nopesel-done': '#zgloszenie-przyjete', session: '#zalogowano', reclaim: '#wlasne-haslo'
  };
  var TITLES = {
    loading: 'Logowanie',
    method: 'Wybór metody logowania',
    login: 'Logowanie numerem PESEL',
    define: 'Definiowanie hasła',
    nopesel: 'Nie posiadam numeru PESEL',
    'nopesel-done': 'Prośba została przyjęta',
    session: 'Zalogowano',
    reclaim: 'Ustawienie własnego hasła'
  };
  var SITE = 'Narodowy Spis Powszechny Ludności i Mieszkań 2021';

  function $(id) { return document.getElementById(id); }

  /* ------------------------------------------------------------------ DOM helpers */

  // el('p', {class: 'x'}, 'text', otherNode, ...): builds nodes without innerHTML.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (attrs[k] === null || attrs[k] === undefined) return;
        if (k === 'class') node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }

  function announce(text) {
    var live = $('status');
    live.textContent = '';
    // A short delay makes screen readers notice a repeated identical message.
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  /* ------------------------------------------------------------------ Polish wording */

  var plural = new Intl.PluralRules('pl-PL');
  function pl(n, one, few, many) {
    var c = plural.select(n);
    return c === 'one' ? one : c === 'few' ? few : many;
  }
  function seconds(n) { return n + ' ' + pl(n, 'sekundę', 'sekundy', 'sekund'); }

  // Accusative duration: "godzinę", "2 godziny", "2 minuty", "30 sekund".
  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec >= 3600 && sec % 3600 === 0) {
      var h = sec / 3600;
      return h === 1 ? 'godzinę' : h + ' ' + pl(h, 'godzinę', 'godziny', 'godzin');
    }
    if (sec >= 60 && sec % 60 === 0) {
      var m = sec / 60;
      return m === 1 ? 'minutę' : m + ' ' + pl(m, 'minutę', 'minuty', 'minut');
    }
    return seconds(sec);
  }

  var TIMES = { 1: 'Jednokrotne', 2: 'Dwukrotne', 3: 'Trzykrotne', 4: 'Czterokrotne', 5: 'Pięciokrotne',
    6: 'Sześciokrotne', 7: 'Siedmiokrotne', 8: 'Ośmiokrotne', 9: 'Dziewięciokrotne', 10: 'Dziesięciokrotne' };

  function lockoutText() {
    var n = meta.maxFailures;
    var times = TIMES[n] || (n + '-krotne');
    return times + ' błędne zalogowanie zablokuje możliwość zalogowania na co najmniej ' +
      duration(meta.baseBlockSeconds) + ', każde kolejne błędne logowanie wydłuży czas blokady.';
  }

  var dtf = new Intl.DateTimeFormat('pl-PL', { timeZone: TZ, day: 'numeric', month: 'long', year: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

  // "23 listopada 2021 r., godz. 14:05" (Europe/Warsaw); withSeconds adds ":07".
  function formatWarsaw(date, withSeconds) {
    var p = {};
    dtf.formatToParts(date).forEach(function (part) { p[part.type] = part.value; });
    var time = p.hour + ':' + p.minute + (withSeconds ? ':' + p.second : '');
    return p.day + ' ' + p.month + ' ' + p.year + '\u00a0r., godz.\u00a0' + time; // no break inside "2021 r." or "godz. 14:05"
  }
  function timeEl(date, withSeconds, id) {
    return el('time', { datetime: date.toISOString(), id: id || null }, formatWarsaw(date, withSeconds));
  }
  function parseDate(s) {
    if (!s) return null;
    var d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }

  function helplineLink() {
    return el('a', { href: 'tel:' + meta.helpline.replace(/[^+0-9]/g, ''), class: 'nowrap' }, meta.helpline);
  }
  function loginGovLink(text) {
    return el('a', { href: meta.loginGovUrl, rel: 'noopener noreferrer' }, text || 'login.gov.pl');
  }

  /* ------------------------------------------------------------------ PESEL and password rules (RULES.md) */

  var PESEL_WEIGHTS = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
  var CENTURY = { 0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800 };

  function todayInWarsaw() {
    // en-CA formats as YYYY-MM-DD.
    return new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' })
      .format(new Date());
  }

  // Returns null when valid, else the violation code: pesel_format, pesel_checksum, pesel_date.
  function checkPesel(raw) {
    var s = String(raw).trim();
    if (!/^[0-9]{11}$/.test(s)) return 'pesel_format';
    var d = s.split('').map(Number);
    var sum = 0;
    for (var i = 0; i < 10; i++) sum += PESEL_WEIGHTS[i] * d[i];
    if ((10 - (sum % 10)) % 10 !== d[10]) return 'pesel_checksum';
    var yy = d[0] * 10 + d[1];
    var mm = d[2] * 10 + d[3];
    var dd = d[4] * 10 + d[5];
    var c = Math.floor(mm / 20);
    var month = mm - 20 * c;
    if (!(c in CENTURY) || month < 1 || month > 12) return 'pesel_date';
    var year = CENTURY[c] + yy;
    var daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate(); // non-leap handled below
    if (month === 2) {
      var leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
      daysInMonth = leap ? 29 : 28;
    }
    if (dd < 1 || dd > daysInMonth) return 'pesel_date';
    var iso = year + '-' + String(month).padStart(2, '0') + '-' + String(dd).padStart(2, '0');
    if (iso > todayInWarsaw()) return 'pesel_date';
    return null;
  }

  function passwordRules(pw) {
    var pol = meta.passwordPolicy;
    return {
      length: pw.length >= pol.minLength,
      upper: pol.requireUppercase === false || /[A-Z]/.test(pw),
      digit: pol.requireDigit === false || /[0-9]/.test(pw),
      ascii: pw.length > 0 && (pol.asciiOnly === false || /^[\x20-\x7E]*$/.test(pw))
    };
  }

  // Client-side password violations (the server also checks the list of common passwords).
  function passwordViolations(pw, pesel) {
    if (!pw) return ['password_required'];
    var r = passwordRules(pw);
    var v = [];
    if (!r.length) v.push('password_too_short');
    if (pw.length > meta.passwordPolicy.maxLength) v.push('password_too_long');
    if (!r.upper) v.push('password_no_uppercase');
    if (!r.digit) v.push('password_no_digit');
    if (!r.ascii) v.push('password_invalid_characters');
    var p = String(pesel || '').trim();
    if (/^[0-9]{11}$/.test(p) && pw.indexOf(p) !== -1) v.push('password_contains_pesel');
    return v;
  }

  var VIOLATION_TEXT = {
    pesel_format: function () { return 'Numer PESEL musi składać się z 11 cyfr.'; },
    pesel_checksum: function () { return 'To nie jest prawidłowy numer PESEL: nie zgadza się cyfra kontrolna (ostatnia). Sprawdź, czy nie ma pomyłki w cyfrach.'; },
    pesel_date: function () { return 'To nie jest prawidłowy numer PESEL: pierwsze 6 cyfr nie tworzy prawidłowej daty urodzenia.'; },
    mother_maiden_name_invalid: function () { return 'Wpisz nazwisko rodowe matki: same litery, ewentualnie spacja, łącznik lub apostrof (najwyżej 100 znaków).'; },
    password_required: function () { return 'Wpisz hasło.'; },
    password_too_short: function () { return 'Hasło musi mieć co najmniej ' + meta.passwordPolicy.minLength + ' ' + pl(meta.passwordPolicy.minLength, 'znak', 'znaki', 'znaków') + '.'; },
    password_too_long: function () { return 'Hasło może mieć najwyżej ' + meta.passwordPolicy.maxLength + ' znaków.'; },
    password_no_uppercase: function () { return 'Hasło musi zawierać co najmniej jedną wielką literę (A–Z).'; },
    password_no_digit: function () { return 'Hasło musi zawierać co najmniej jedną cyfrę (0–9).'; },
    password_invalid_characters: function () { return 'Hasło nie może zawierać polskich znaków (np. ą, ę, ł, ó) ani innych znaków spoza podstawowego alfabetu łacińskiego.'; },
    password_contains_pesel: function () { return 'Hasło nie może zawierać numeru PESEL.'; },
    password_too_common: function () { return 'To hasło jest zbyt popularne i łatwe do odgadnięcia. Wymyśl inne.'; },
    password_mismatch: function () { return 'Powtórzone hasło różni się od hasła. Wpisz to samo hasło w obu polach.'; },
    password_repeat_required: function () { return 'Powtórz hasło.'; },
    full_name_invalid: function () { return 'Wpisz imię i nazwisko.'; },
    contact_required: function () { return 'Podaj adres e-mail lub numer telefonu, abyśmy mogli się z Tobą skontaktować.'; },
    email_invalid: function () { return 'Wpisz prawidłowy adres e-mail, np. jan.kowalski@example.pl.'; },
    phone_invalid: function () { return 'Wpisz prawidłowy numer telefonu, np. +48 600 100 200.'; },
    message_too_long: function () { return 'Wiadomość jest za długa. Skróć ją.'; }
  };
  function violationText(code, fallback) {
    var f = VIOLATION_TEXT[code];
    return f ? f() : (fallback || 'Sprawdź wartość w tym polu.');
  }

  /* ------------------------------------------------------------------ API */

  function api(method, path, body) {
    var opts = {
      method: method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Accept': 'application/json, application/problem+json', 'Accept-Language': 'pl' }
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (res) {
      var retry = parseInt(res.headers.get('Retry-After') || '', 10);
      var base = { ok: res.ok, status: res.status, data: null, retryAfter: isNaN(retry) ? null : retry };
      if (res.status === 204) return base;
      return res.text().then(function (text) {
        if (text) { try { base.data = JSON.parse(text); } catch (e) { base.data = null; } }
        return base;
      });
    }, function () {
      return { ok: false, status: 0, network: true, data: null, retryAfter: null };
    });
  }

  function loadMeta() {
    return api('GET', '/api/v1/meta').then(function (r) {
      if (!r.ok || !r.data) return;
      var d = r.data;
      if (d.passwordPolicy) meta.passwordPolicy = Object.assign({}, meta.passwordPolicy, d.passwordPolicy);
      if (typeof d.surveyWindowDays === 'number') meta.surveyWindowDays = d.surveyWindowDays;
      meta.censusOpensAt = d.censusOpensAt || null;
      meta.censusClosesAt = d.censusClosesAt || null;
      if (d.helpline) meta.helpline = d.helpline;
      var lock = d.lockout || {};
      var mf = typeof lock.maxFailures === 'number' ? lock.maxFailures : d.maxFailures;
      var bb = typeof lock.baseBlockSeconds === 'number' ? lock.baseBlockSeconds : d.baseBlockSeconds;
      if (typeof mf === 'number') meta.maxFailures = mf;
      if (typeof bb === 'number') meta.baseBlockSeconds = bb;
      // With the national node the card starts the login here (the server's own path).
      meta.nationalNode = d.nationalNode === true;
      if (meta.nationalNode) meta.loginGovUrl = isOwnPath(d.loginGovUrl) ? d.loginGovUrl : '/saml/login';
      else if (isHttpUrl(d.loginGovUrl)) meta.loginGovUrl = d.loginGovUrl;
      if (isHttpUrl(d.formUrl)) meta.formUrl = d.formUrl;
    });
  }
  function isHttpUrl(u) { return typeof u === 'string' && /^https?:\/\//i.test(u); }
  function isOwnPath(u) { return typeof u === 'string' && /^\/(?![\/\\])/.test(u); }

  function applyMeta() {
    document.querySelectorAll('.js-helpline').forEach(function (n) { n.textContent = meta.helpline; });
    document.querySelectorAll('.js-helpline-link').forEach(function (a) {
      a.setAttribute('href', 'tel:' + meta.helpline.replace(/[^+0-9]/g, ''));
    });
    document.querySelectorAll('.js-lockout-text').forEach(function (n) { n.textContent = lockoutText(); });
    document.querySelectorAll('.js-window-days').forEach(function (n) { n.textContent = String(meta.surveyWindowDays); });
    document.querySelectorAll('.js-min-length').forEach(function (n) { n.textContent = String(meta.passwordPolicy.minLength); });
    var card = $('choice-logingov');
    card.setAttribute('href', meta.loginGovUrl);
    if (meta.nationalNode) card.removeAttribute('rel');
    $('form-link').setAttribute('href', meta.formUrl);

    var notice = $('census-notice');
    var now = Date.now();
    var opens = parseDate(meta.censusOpensAt);
    var closes = parseDate(meta.censusClosesAt);
    notice.replaceChildren();
    if (opens && now < opens.getTime()) {
      append(notice, el('p', null, 'Samospis internetowy będzie możliwy od ', timeEl(opens, false), ' (czasu polskiego).'));
    } else if (closes && now >= closes.getTime()) {
      append(notice, el('p', null, 'Spis zakończył się ', timeEl(closes, false), '. Logowanie nie jest już możliwe.'));
    } else if (closes) {
      append(notice, el('p', null, 'Samospis internetowy jest możliwy do ', timeEl(closes, false), ' (czasu polskiego).'));
    }
    notice.hidden = !notice.firstChild;
  }

  /* ------------------------------------------------------------------ screens and routing */

  function screenEl(name) { return $('screen-' + name); }

  function show(name, focus) {
    document.querySelectorAll('main > .screen').forEach(function (s) { s.hidden = true; });
    var s = screenEl(name);
    s.hidden = false;
    state.current = name;
    document.title = TITLES[name] + ' — ' + SITE;

    if (name === 'session') renderSession();
    if (name === 'reclaim') renderReclaim();
    if (name === 'nopesel-done') $('nopesel-reference').textContent = state.reference || '';

    var alertBox = $(name + '-alert');
    if (alertBox) {
      clearAlert(alertBox);
      var pending = state.pendingAlert[name];
      delete state.pendingAlert[name];
      if (pending) {
        renderAlert(alertBox, pending);
        if (focus) { alertBox.focus(); return; }
      }
    }
    if (focus) s.querySelector('.screen-title').focus();
  }

  function resolve(hash) {
    var name = ROUTES[hash];
    if (name === undefined) return null;
    if (state.session) return name === 'reclaim' && reclaimAllowed() ? 'reclaim' : 'session';
    if (name === 'session' || name === 'reclaim') return 'method';
    if (name === 'nopesel-done' && !state.reference) return 'nopesel';
    return name;
  }

  // Called on hashchange/popstate and after pushState/replaceState.
  function route(focus) {
    var name = resolve(location.hash);
    if (name === null) return;                 // e.g. the skip link's #tresc
    if (HASH_OF[name] !== location.hash && !(name === 'method' && (location.hash === '' || location.hash === '#'))) {
      history.replaceState(null, '', HASH_OF[name] || location.pathname + location.search);
    }
    if (name === state.current) return;
    show(name, focus !== false);
  }

  function go(name, replace) {
    var url = HASH_OF[name] || location.pathname + location.search;
    if (replace) history.replaceState(null, '', url);
    else if ((HASH_OF[name] || '') !== location.hash) history.pushState(null, '', url);
    if (name === state.current) {
      // Same screen again (e.g. after logout from a deep link): re-render.
      state.current = null;
    }
    route(true);
  }

  /* ------------------------------------------------------------------ errors */

  function clearAlert(box) {
    box.replaceChildren();
    box.className = 'alert';
    box.hidden = true;
    box.removeAttribute('role');
  }

  // alert = {kind: 'error'|'success'|'info', title, paragraphs: [node|string|array]}
  function renderAlert(box, alert) {
    box.replaceChildren();
    box.className = 'alert alert-' + (alert.kind || 'error');
    append(box, el('p', { class: 'alert-title' }, alert.kind === 'error' || !alert.kind ? el('span', { class: 'visually-hidden' }, 'Błąd: ') : null, alert.title));
    (alert.paragraphs || []).forEach(function (p) {
      append(box, p && p.nodeType ? p : el('p', null, p));
    });
    box.hidden = false;
  }

  function showAlert(screen, alert) {
    var box = $(screen + '-alert');
    renderAlert(box, alert);
    box.focus();
  }

  function fieldErrorEl(input) { return $(input.getAttribute('data-error') || input.id + '-error'); }

  function setDescribedBy(input, id, on) {
    var ids = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)
      .filter(function (x) { return x !== id; });
    if (on) ids.unshift(id);
    if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
    else input.removeAttribute('aria-describedby');
  }

  function setFieldError(input, messages) {
    var box = fieldErrorEl(input);
    box.replaceChildren(el('span', { class: 'visually-hidden' }, 'Błąd: '));
    messages.forEach(function (m) { append(box, el('span', null, m)); });
    box.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    setDescribedBy(input, box.id, true);
  }

  function clearFieldError(input) {
    var box = fieldErrorEl(input);
    box.replaceChildren();
    box.hidden = true;
    input.removeAttribute('aria-invalid');
    setDescribedBy(input, box.id, false);
  }

  function clearFormErrors(form) {
    form.querySelectorAll('.field-error').forEach(function (b) { b.replaceChildren(); b.hidden = true; });
    form.querySelectorAll('input:not([type=checkbox]), textarea').forEach(function (input) {
      input.removeAttribute('aria-invalid');
      (input.getAttribute('aria-describedby') || '').split(/\s+/).forEach(function (id) {
        var n = id && $(id);
        if (n && n.classList.contains('field-error')) setDescribedBy(input, id, false);
      });
    });
    var alertBox = $(state.current + '-alert');
    if (alertBox) clearAlert(alertBox);
  }

  // errors: array of [inputId, [message...]]. The pseudo id CONTACT is the no-PESEL
  // "e-mail or phone" group. Focus goes to the first field in document order.
  var CONTACT = '__contact';
  function showFieldErrors(errors) {
    var count = 0;
    var inputs = [];
    errors.forEach(function (e) {
      if (e[0] === CONTACT) { showContactRequired(e[1]); inputs.push($('nopesel-email')); }
      else { setFieldError($(e[0]), e[1]); inputs.push($(e[0])); }
      count += e[1].length;
    });
    var all = Array.prototype.slice.call(document.querySelectorAll('input, textarea'));
    inputs.sort(function (a, b) { return all.indexOf(a) - all.indexOf(b); });
    if (inputs.length) inputs[0].focus();
    announce(count === 1 ? 'Formularz zawiera błąd. Popraw zaznaczone pole.' :
      'Formularz zawiera ' + count + ' ' + pl(count, 'błąd', 'błędy', 'błędów') + '. Popraw zaznaczone pola.');
  }

  // "e-mail or phone" belongs to the fieldset: one message, both inputs marked and described by it.
  function showContactRequired(messages) {
    var box = $('nopesel-contact-error');
    box.replaceChildren(el('span', { class: 'visually-hidden' }, 'Błąd: '));
    messages.forEach(function (m) { append(box, el('span', null, m)); });
    box.hidden = false;
    ['nopesel-email', 'nopesel-phone'].forEach(function (id) {
      $(id).setAttribute('aria-invalid', 'true');
      setDescribedBy($(id), 'nopesel-contact-error', true);
    });
  }

  function retrySeconds(r) {
    var d = r.data || {};
    if (typeof d.retryAfterSeconds === 'number') return Math.max(1, Math.ceil(d.retryAfterSeconds));
    if (typeof r.retryAfter === 'number') return Math.max(1, r.retryAfter);
    return null;
  }
  function retryText(r) {
    var n = retrySeconds(r);
    return n ? 'Spróbuj ponownie za ' + seconds(n) + '.' : 'Spróbuj ponownie za chwilę.';
  }

  // Page-level alert for a problem response (not 422 with violations).
  function problemAlert(r) {
    var d = r.data || {};
    var code = d.code;
    if (r.network) {
      return { title: 'Brak połączenia z serwerem.', paragraphs: ['Sprawdź połączenie z internetem i spróbuj ponownie.'] };
    }
    switch (code) {
      case 'invalid_credentials':
        return { title: 'Nieprawidłowy numer PESEL lub hasło.', paragraphs: [
          'Sprawdź, czy numer PESEL i hasło są wpisane poprawnie. W haśle wielkość liter ma znaczenie.',
          el('p', null, 'Jeśli logujesz się pierwszy raz, nie masz jeszcze hasła: użyj opcji ', el('strong', null, 'ZDEFINIUJ HASŁO'), '.'),
          el('p', null, el('strong', null, 'Pamiętaj: '), lockoutText())
        ] };
      case 'identity_not_verified':
        return { title: 'Nie udało się potwierdzić tożsamości.', paragraphs: [
          'Numer PESEL lub nazwisko rodowe matki nie zgadzają się z danymi w rejestrze PESEL. Sprawdź numer PESEL i pisownię nazwiska rodowego matki.',
          el('p', null, el('strong', null, 'Pamiętaj: '), lockoutText())
        ] };
      case 'account_locked': {
        var until = parseDate(d.lockedUntil);
        if (!until) {
          var secs = retrySeconds(r);
          if (secs) until = new Date(Date.now() + secs * 1000);
        }
        return { title: 'Logowanie na ten numer PESEL jest zablokowane.', paragraphs: [
          until
            ? el('p', { id: 'lock-message' }, 'Z powodu wielokrotnego błędnego logowania możliwość zalogowania jest zablokowana do ',
              el('strong', null, timeEl(until, true, 'locked-until')), ' (czasu polskiego).')
            : el('p', { id: 'lock-message' }, 'Z powodu wielokrotnego błędnego logowania możliwość zalogowania jest czasowo zablokowana.'),
          'Po zakończeniu blokady każde kolejne błędne logowanie ponownie ją włączy, na dłużej.',
          el('p', null, 'Jeśli nie pamiętasz hasła, zadzwoń na infolinię spisową ', helplineLink(),
            ' albo zaloguj się przez ', loginGovLink(), ' (profil zaufany, bankowość elektroniczna).')
        ] };
      }
      case 'survey_window_closed':
        return { title: 'Czas na samospis internetowy minął.', paragraphs: [
          'Samospis przez Internet jest możliwy przez ' + meta.surveyWindowDays + ' dni od pierwszego zalogowania i ten czas już upłynął.',
          el('p', null, 'Możesz spisać się przez telefon: zadzwoń na infolinię spisową ', helplineLink(), '. Konsultant przeprowadzi z Tobą wywiad.'),
          returnToServiceButton()
        ] };
      case 'census_not_open': {
        var opens = parseDate(meta.censusOpensAt);
        return { title: 'Spis jeszcze się nie rozpoczął.', paragraphs: [
          opens ? el('p', null, 'Samospis internetowy będzie możliwy od ', timeEl(opens, false), ' (czasu polskiego).')
            : 'Zalogujesz się po rozpoczęciu spisu.',
          el('p', null, 'Pytania: infolinia spisowa ', helplineLink(), '.')
        ] };
      }
      case 'census_closed': {
        var closes = parseDate(meta.censusClosesAt);
        return { title: 'Spis został zakończony.', paragraphs: [
          closes ? el('p', null, 'Narodowy Spis Powszechny zakończył się ', timeEl(closes, false), '. Logowanie i samospis nie są już możliwe.')
            : 'Logowanie i samospis nie są już możliwe.',
          el('p', null, 'Pytania: infolinia spisowa ', helplineLink(), '.')
        ] };
      }
      case 'pesel_reserved':
        return { title: 'Ten numer PESEL jest zastrzeżony.', paragraphs: [
          'Dla zastrzeżonego numeru PESEL nie można, ze względów bezpieczeństwa, zdefiniować hasła na podstawie numeru PESEL i nazwiska rodowego matki.',
          el('p', null, 'Zaloguj się przez ', loginGovLink('login.gov.pl'), ' (profil zaufany lub bankowość elektroniczna) albo zadzwoń na infolinię spisową ',
            helplineLink(), ' — konsultant pomoże Ci się spisać.')
        ] };
      case 'password_already_defined':
        return { title: 'Hasło dla tego numeru PESEL zostało już zdefiniowane.', paragraphs: [
          el('p', null, 'Wróć i zaloguj się tym hasłem, używając opcji ', el('strong', null, 'ZALOGUJ'), '.'),
          el('p', null, 'Jeśli to nie Ty zdefiniowałeś hasło albo go nie pamiętasz, zadzwoń na infolinię spisową ', helplineLink(),
            '. Po potwierdzeniu tożsamości konsultant usunie dotychczasowe hasło i zdefiniujesz nowe.')
        ] };
      case 'overloaded':
        return { title: 'Serwis jest chwilowo przeciążony.', paragraphs: [
          el('p', { id: 'retry-message' }, 'W tej chwili loguje się bardzo dużo osób. ' + retryText(r))
        ] };
      case 'rate_limited':
        return { title: 'Zbyt wiele prób w krótkim czasie.', paragraphs: [
          el('p', { id: 'retry-message' }, 'Z Twojego urządzenia lub sieci wysłano zbyt wiele prób. ' + retryText(r))
        ] };
      case 'store_unavailable':
        return { title: 'Logowanie jest chwilowo niedostępne.', paragraphs: [
          el('p', { id: 'retry-message' }, 'Wystąpił problem techniczny po naszej stronie. ' + retryText(r)),
          el('p', null, 'Jeśli problem się powtarza, zadzwoń na infolinię spisową ', helplineLink(), '.')
        ] };
      case 'reclaim_not_allowed':
        return { title: 'Nie można już ustawić hasła w ten sposób.', paragraphs: [
          'Własne hasło można ustawić tylko w ciągu kilku minut od zalogowania przez login.gov.pl.',
          el('p', null, 'Zaloguj się ponownie przez ', loginGovLink(), ' i od razu ustaw hasło albo zadzwoń na infolinię spisową ', helplineLink(), '.')
        ] };
      case 'not_authenticated':
        return { title: 'Sesja wygasła.', paragraphs: ['Zaloguj się ponownie.'] };
      case 'payload_too_large':
        return { title: 'Wpisane dane są zbyt długie.', paragraphs: ['Skróć tekst w polach formularza i spróbuj ponownie.'] };
      case 'malformed_request':
      case 'unsupported_media_type':
      case 'origin_not_allowed':
        return { title: 'Nie udało się wysłać formularza.', paragraphs: [
          'Odśwież stronę i spróbuj ponownie. Jeśli problem się powtarza, zadzwoń na infolinię spisową.',
          el('p', { class: 'muted small' }, 'Kod błędu: ' + code)
        ] };
      default: {
        var paragraphs = [];
        if (d.detail) paragraphs.push(String(d.detail));
        paragraphs.push(el('p', null, 'Spróbuj ponownie za chwilę. Jeśli problem się powtarza, zadzwoń na infolinię spisową ', helplineLink(), '.'));
        if (code) paragraphs.push(el('p', { class: 'muted small' }, 'Kod błędu: ' + code));
        else if (r.status) paragraphs.push(el('p', { class: 'muted small' }, 'Kod odpowiedzi: ' + r.status));
        return { title: (d.title && !code) ? 'Wystąpił błąd: ' + d.title : 'Wystąpił nieoczekiwany błąd.', paragraphs: paragraphs };
      }
    }
  }

  // fieldMap: API field name -> input id. Shows 422 violations by field, anything else page-level.
  function handleFailure(screen, r, fieldMap) {
    var d = r.data || {};
    if (r.status === 422 && Array.isArray(d.violations) && d.violations.length) {
      var byInput = {};
      var order = [];
      var unplaced = [];
      d.violations.forEach(function (v) {
        var id = (v.code === 'contact_required' && screen === 'nopesel') ? CONTACT : fieldMap[v.field];
        var text = violationText(v.code, v.message);
        if (!id || (id !== CONTACT && !$(id))) { unplaced.push(text); return; }
        if (!byInput[id]) { byInput[id] = []; order.push(id); }
        if (byInput[id].indexOf(text) === -1) byInput[id].push(text);
      });
      if (CHECKLIST[screen]) markChecklistFailures(screen, d.violations.map(function (v) { return v.code; }));
      if (unplaced.length) {
        renderAlert($(screen + '-alert'), { title: 'Popraw dane w formularzu.', paragraphs: [el('ul', null, unplaced.map(function (t) { return el('li', null, t); }))] });
      }
      if (order.length) showFieldErrors(order.map(function (id) { return [id, byInput[id]]; }));
      else $(screen + '-alert').focus();
      return;
    }
    showAlert(screen, problemAlert(r));
  }

  function withBusy(form, message, fn) {
    if (state.busy) return Promise.resolve();
    state.busy = true;
    var btn = form.querySelector('[type=submit]');
    btn.setAttribute('aria-disabled', 'true');
    form.setAttribute('aria-busy', 'true');
    announce(message);
    return fn().then(function (x) {
      state.busy = false;
      btn.removeAttribute('aria-disabled');
      form.removeAttribute('aria-busy');
      return x;
    }, function (e) {
      state.busy = false;
      btn.removeAttribute('aria-disabled');
      form.removeAttribute('aria-busy');
      throw e;
    });
  }

  /* ------------------------------------------------------------------ password checklist */

  // The password checklists: screen -> [list id, password input id].
  var CHECKLIST = { define: ['password-checklist', 'define-password'], reclaim: ['reclaim-checklist', 'reclaim-password'] };

  function updateChecklist(failedMode, screen) {
    var ids = CHECKLIST[screen || 'define'];
    var pw = $(ids[1]).value;
    var r = passwordRules(pw);
    document.querySelectorAll('#' + ids[0] + ' li').forEach(function (li) {
      var ok = r[li.getAttribute('data-rule')];
      var wasFailed = li.classList.contains('failed');
      li.className = ok ? 'met' : ((failedMode || wasFailed) ? 'failed' : 'unmet');
      li.querySelector('.check-state').textContent = ok ? ' — spełniony' : ' — niespełniony';
    });
  }
  function markChecklistFailures(screen, codes) {
    var map = { password_too_short: 'length', password_no_uppercase: 'upper', password_no_digit: 'digit', password_invalid_characters: 'ascii' };
    codes.forEach(function (c) {
      var li = map[c] && document.querySelector('#' + CHECKLIST[screen][0] + ' li[data-rule="' + map[c] + '"]');
      if (li) { li.className = 'failed'; li.querySelector('.check-state').textContent = ' — niespełniony'; }
    });
  }

  /* ------------------------------------------------------------------ session screen */

  function renderSession() {
    var s = state.session || {};
    var intro = $('session-intro');
    intro.textContent = state.sessionIntro === 'defined'
      ? 'Hasło zostało zdefiniowane. Zapamiętaj je — będzie potrzebne przy ponownym logowaniu.'
      : state.sessionIntro === 'reclaimed' ? 'Ustawiono nowe hasło. Dotychczasowe hasło przestało działać, a inne sesje zostały zakończone. Zapamiętaj nowe hasło — będzie potrzebne przy ponownym logowaniu.'
      : state.sessionIntro === 'login' ? 'Logowanie przebiegło pomyślnie.'
      : s.acr === NODE_ACR ? 'Zalogowano przez login.gov.pl.' : 'Masz aktywną sesję w aplikacji spisowej.';
    $('reclaim-offer').hidden = state.sessionIntro === 'reclaimed' || !reclaimAllowed();
    var end = parseDate(s.windowEndsAt);
    var t = $('session-window-end');
    var left = $('session-days-left');
    if (end) {
      t.setAttribute('datetime', end.toISOString());
      t.textContent = formatWarsaw(end, false);
      var ms = end.getTime() - Date.now();
      if (ms <= 0) {
        left.textContent = 'Czas na samospis internetowy minął.';
      } else if (ms < 86400000) {
        left.textContent = 'Zostało mniej niż 24 godziny.';
      } else {
        var days = Math.ceil(ms / 86400000);
        left.textContent = pl(days, 'Został ', 'Zostały ', 'Zostało ') + days + ' ' + pl(days, 'dzień', 'dni', 'dni') + '.';
      }
      left.setAttribute('data-days', ms > 0 ? String(Math.ceil(ms / 86400000)) : '0');
    } else {
      t.removeAttribute('datetime');
      t.textContent = '—';
      left.textContent = '';
    }
  }

  /* ------------------------------------------------------------------ reclaim after a login.gov.pl login */

  var NODE_ACR = 'urn:census:acr:login.gov.pl';

  // A login.gov.pl session may replace a password someone defined for this PESEL, for a
  // few minutes after the node authentication (RULES.md, "Reclaiming an account").
  function reclaimAllowed() {
    var s = state.session;
    var until = s && parseDate(s.reclaimUntil);
    return !!(s && s.acr === NODE_ACR && s.passwordDefined === true && until && until.getTime() > Date.now());
  }

  function renderReclaim() {
    var until = parseDate((state.session || {}).reclaimUntil);
    var t = $('reclaim-until');
    $('reclaim-deadline').hidden = !until;
    if (until) {
      t.setAttribute('datetime', until.toISOString());
      t.textContent = formatWarsaw(until, false);
    }
  }

  function onReclaimSubmit(e) {
    e.preventDefault();
    if (state.busy) return;
    var form = e.target;
    clearFormErrors(form);
    var password = $('reclaim-password').value;
    var repeat = $('reclaim-password-repeat').value;
    var errors = [];
    var pv = passwordViolations(password, null);
    if (pv.length) {
      errors.push(['reclaim-password', pv.map(function (c) { return violationText(c); })]);
      updateChecklist(true, 'reclaim');
    }
    if (!repeat) errors.push(['reclaim-password-repeat', [violationText('password_repeat_required')]]);
    else if (repeat !== password) errors.push(['reclaim-password-repeat', [violationText('password_mismatch')]]);
    if (errors.length) { showFieldErrors(errors); return; }
    withBusy(form, 'Trwa ustawianie hasła…', function () {
      return api('POST', '/api/v1/account/reclaim', { password: password, passwordRepeat: repeat });
    }).then(function (r) {
      if (!r) return;
      if (r.ok) signedIn(r.data, 'reclaimed');
      else if (r.status === 401) {
        state.session = null;
        state.pendingAlert.method = problemAlert(r);
        go('method');
      } else handleFailure('reclaim', r, { password: 'reclaim-password', passwordRepeat: 'reclaim-password-repeat' });
    });
  }

  /* ------------------------------------------------------------------ hand-off to the census form (OIDC) */

  // A service sent the person here (GET /oidc/authorize without a session): the
  // request waits under ?authz=<id> until the login, then continues to the service.
  function authzFromUrl() {
    var id = new URLSearchParams(location.search).get('authz');
    return id && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : null;
  }
  var EXPIRED_REQUEST = { title: 'Prośba o logowanie wygasła.', paragraphs: [
    'Wróć do usługi, z której przyszła prośba o logowanie (np. formularza spisowego), i spróbuj ponownie.'] };

  function loadAuthz() {
    var id = authzFromUrl();
    if (!id) return Promise.resolve();
    return api('GET', '/api/v1/authorization-requests/' + id).then(function (r) {
      if (r.ok && r.data && r.data.clientName) {
        state.authz = id;
        state.clientName = String(r.data.clientName);
        $('oidc-client-name').textContent = state.clientName;
        $('oidc-client').hidden = false;
      } else if (r.status === 404) {
        state.pendingAlert.method = EXPIRED_REQUEST;
      }
    });
  }

  function dropAuthz() {
    state.authz = null;
    $('oidc-client').hidden = true;
  }

  // Asks for the address to return to the service (with a code) and goes there.
  // Resolves to true when leaving the page; false when a (new) login is needed.
  function continueAuthz(screen) {
    announce('Trwa powrót do usługi: ' + state.clientName + '…');
    return api('POST', '/api/v1/authorization-requests/' + state.authz + '/continue').then(function (r) {
      if (r.ok && r.data && isHttpUrl(r.data.redirectTo)) {
        window.location.assign(r.data.redirectTo);
        return true;
      }
      if (r.status === 401) return false;
      if (r.status === 404) {
        dropAuthz();
        if (screen) showAlert(screen, EXPIRED_REQUEST);
        else state.pendingAlert.method = EXPIRED_REQUEST;
        return false;
      }
      if (screen) showAlert(screen, problemAlert(r));
      else state.pendingAlert.method = problemAlert(r);
      return false;
    });
  }

  // While a service waits: back to it without a login (it learns access_denied).
  function returnToServiceButton() {
    if (!state.authz) return null;
    var btn = el('button', { type: 'button', class: 'btn btn-secondary', id: 'oidc-return' },
      'WRÓĆ DO USŁUGI: ' + state.clientName);
    btn.addEventListener('click', function () {
      api('POST', '/api/v1/authorization-requests/' + state.authz + '/cancel').then(function (r) {
        if (r.ok && r.data && isHttpUrl(r.data.redirectTo)) window.location.assign(r.data.redirectTo);
        else { dropAuthz(); btn.remove(); }
      });
    });
    return el('p', null, btn);
  }

  function signedIn(sessionBody, how) {
    state.session = sessionBody || {};
    state.sessionIntro = how;
    // Do not leave secrets in the DOM once they are no longer needed.
    ['login-password', 'define-password', 'define-password-repeat', 'define-maiden', 'reclaim-password', 'reclaim-password-repeat']
      .forEach(function (id) { $(id).value = ''; });
    ['login-show-password', 'define-show-password', 'reclaim-show-password'].forEach(function (id) { $(id).checked = false; togglePassword($(id)); });
    updateChecklist(false);
    updateChecklist(false, 'reclaim');
    go('session');
    announce(how === 'defined' ? 'Hasło zostało zdefiniowane. Zalogowano.'
      : how === 'reclaimed' ? 'Ustawiono nowe hasło.' : 'Zalogowano.');
    if (state.authz) continueAuthz('session');
  }

  /* ------------------------------------------------------------------ form handlers */

  // Inline PESEL check: as soon as 11 characters are typed, and when leaving the field for
  // another field. Not when the focus goes to a button: the message would push the button
  // away under the pointer; the button's own check reports it instead.
  function showPeselCheck(input) {
    var code = checkPesel(input.value);
    if (code) setFieldError(input, [violationText(code)]);
    else clearFieldError(input);
  }
  function onPeselBlur(e) {
    var input = e.target;
    var next = e.relatedTarget;
    if (!input.value.trim() || (next && next.tagName === 'BUTTON')) return;
    showPeselCheck(input);
  }
  function onPeselInput(e) {
    var input = e.target;
    var v = input.value.trim();
    if (v.length >= 11) showPeselCheck(input);
    else if (input.getAttribute('aria-invalid') === 'true') clearFieldError(input);
  }

  function onLoginSubmit(e) {
    e.preventDefault();
    if (state.busy) return;
    var form = e.target;
    clearFormErrors(form);
    var pesel = $('login-pesel').value.trim();
    var password = $('login-password').value;
    var errors = [];
    var pc = checkPesel(pesel);
    if (pc) errors.push(['login-pesel', [violationText(pc)]]);
    if (!password) errors.push(['login-password', [violationText('password_required')]]);
    if (errors.length) { showFieldErrors(errors); return; }
    withBusy(form, 'Trwa logowanie…', function () {
      return api('POST', '/api/v1/login', { pesel: pesel, password: password });
    }).then(function (r) {
      if (!r) return;
      if (r.ok) signedIn(r.data, 'login');
      else handleFailure('login', r, { pesel: 'login-pesel', password: 'login-password' });
    });
  }

  function onDefineSubmit(e) {
    e.preventDefault();
    if (state.busy) return;
    var form = e.target;
    clearFormErrors(form);
    var pesel = $('define-pesel').value.trim();
    var maiden = $('define-maiden').value.trim();
    var password = $('define-password').value;
    var repeat = $('define-password-repeat').value;
    var errors = [];
    var pc = checkPesel(pesel);
    if (pc) errors.push(['define-pesel', [violationText(pc)]]);
    if (!maiden || maiden.length > 100 || !/^[\p{L}\p{M} '’\-]+$/u.test(maiden)) {
      errors.push(['define-maiden', [violationText('mother_maiden_name_invalid')]]);
    }
    var pv = passwordViolations(password, pesel);
    if (pv.length) {
      errors.push(['define-password', pv.map(function (c) { return violationText(c); })]);
      updateChecklist(true);
    }
    if (!repeat) errors.push(['define-password-repeat', [violationText('password_repeat_required')]]);
    else if (repeat !== password) errors.push(['define-password-repeat', [violationText('password_mismatch')]]);
    if (errors.length) { showFieldErrors(errors); return; }
    withBusy(form, 'Trwa zapisywanie hasła…', function () {
      return api('POST', '/api/v1/password', { pesel: pesel, motherMaidenName: maiden, password: password, passwordRepeat: repeat });
    }).then(function (r) {
      if (!r) return;
      if (r.ok) signedIn(r.data, 'defined');
      else handleFailure('define', r, { pesel: 'define-pesel', motherMaidenName: 'define-maiden', password: 'define-password', passwordRepeat: 'define-password-repeat' });
    });
  }

  function onNoPeselSubmit(e) {
    e.preventDefault();
    if (state.busy) return;
    var form = e.target;
    clearFormErrors(form);
    var fullName = $('nopesel-name').value.trim();
    var email = $('nopesel-email').value.trim();
    var phone = $('nopesel-phone').value.trim();
    var message = $('nopesel-message').value.trim();
    var errors = [];
    if (!fullName) errors.push(['nopesel-name', [violationText('full_name_invalid')]]);
    if (!email && !phone) errors.push([CONTACT, [violationText('contact_required')]]);
    if (email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) errors.push(['nopesel-email', [violationText('email_invalid')]]);
    if (phone && !/^\+?[0-9][0-9 ()\-]{5,}$/.test(phone)) errors.push(['nopesel-phone', [violationText('phone_invalid')]]);
    if (errors.length) { showFieldErrors(errors); return; }
    var body = { fullName: fullName };
    if (email) body.email = email;
    if (phone) body.phone = phone;
    if (message) body.message = message;
    withBusy(form, 'Trwa wysyłanie prośby…', function () {
      return api('POST', '/api/v1/no-pesel-requests', body);
    }).then(function (r) {
      if (!r) return;
      if (r.ok && r.data && r.data.reference) {
        state.reference = String(r.data.reference);
        form.reset();
        go('nopesel-done');
        announce('Prośba została przyjęta. Numer zgłoszenia: ' + state.reference);
      } else if (r.ok) {
        showAlert('nopesel', { title: 'Prośba została wysłana, ale nie otrzymaliśmy numeru zgłoszenia.', paragraphs: [el('p', null, 'Zadzwoń na infolinię spisową ', helplineLink(), ', aby ją potwierdzić.')] });
      } else {
        handleFailure('nopesel', r, { fullName: 'nopesel-name', email: 'nopesel-email', phone: 'nopesel-phone', message: 'nopesel-message' });
      }
    });
  }

  function onLogout() {
    if (state.busy) return;
    var btn = $('logout-button');
    state.busy = true;
    btn.setAttribute('aria-disabled', 'true');
    announce('Trwa wylogowywanie…');
    api('POST', '/api/v1/logout').then(function (r) {
      state.busy = false;
      btn.removeAttribute('aria-disabled');
      if (r.ok || r.status === 401) {
        state.session = null;
        state.sessionIntro = null;
        state.pendingAlert.method = { kind: 'success', title: 'Wylogowano.', paragraphs: ['Aby wrócić do formularza spisowego, zaloguj się ponownie.'] };
        go('method');
      } else {
        showAlert('session', problemAlert(r));
      }
    });
  }

  function togglePassword(box) {
    var type = box.checked ? 'text' : 'password';
    box.getAttribute('data-toggles').split(/\s+/).forEach(function (id) { $(id).type = type; });
  }

  /* ------------------------------------------------------------------ start */

  function wire() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('define-form').addEventListener('submit', onDefineSubmit);
    $('reclaim-form').addEventListener('submit', onReclaimSubmit);
    $('reclaim-password').addEventListener('input', function () { updateChecklist(false, 'reclaim'); });
    $('reclaim-skip').addEventListener('click', function () { go('session'); });
    $('go-reclaim').addEventListener('click', function () {
      clearFormErrors($('reclaim-form'));
      updateChecklist(false, 'reclaim');
      go('reclaim');
    });
    $('nopesel-form').addEventListener('submit', onNoPeselSubmit);
    $('logout-button').addEventListener('click', onLogout);

    ['login-pesel', 'define-pesel'].forEach(function (id) {
      $(id).addEventListener('blur', onPeselBlur);
      $(id).addEventListener('input', onPeselInput);
    });
    $('define-password').addEventListener('input', function () { updateChecklist(false); });

    document.querySelectorAll('input[data-toggles]').forEach(function (box) {
      box.addEventListener('change', function () { togglePassword(box); });
    });

    $('go-define').addEventListener('click', function () {
      $('define-pesel').value = $('login-pesel').value.trim();
      $('define-password').value = $('login-password').value;
      clearFormErrors($('define-form'));
      clearFieldError($('define-pesel'));
      updateChecklist(false);
      go('define');
      if (state.current === 'define' && $('define-pesel').value && checkPesel($('define-pesel').value)) {
        setFieldError($('define-pesel'), [violationText(checkPesel($('define-pesel').value))]);
      }
    });

    document.querySelectorAll('.js-back').forEach(function (b) {
      b.addEventListener('click', function () {
        var target = b.getAttribute('data-target');
        if (state.current === 'define' && target === 'pesel') {
          $('login-pesel').value = $('define-pesel').value.trim();
          $('login-password').value = $('define-password').value;
        }
        go(target === 'pesel' ? 'login' : 'method');
      });
    });

    $('skip-link').addEventListener('click', function (e) {
      e.preventDefault();
      var s = screenEl(state.current);
      var target = s && s.querySelector('.alert:not([hidden])') || (s && s.querySelector('.screen-title')) || $('tresc');
      target.focus();
    });

    window.addEventListener('hashchange', function () { route(true); });
    window.addEventListener('popstate', function () { route(true); });
  }

  function init() {
    wire();
    updateChecklist(false);
    updateChecklist(false, 'reclaim');
    var metaDone = loadMeta().then(applyMeta, applyMeta);
    var sessionDone = api('GET', '/api/v1/session').then(function (r) {
      if (r.ok && r.data) { state.session = r.data; state.sessionIntro = null; }
      else if (r.status !== 401) {
        // The service could not tell: show why on the first screen, the person can still try.
        state.pendingAlert.method = problemAlert(r);
      }
    });
    Promise.all([metaDone, sessionDone, loadAuthz()]).then(function () {
      // Already logged in: straight back to the service, unless it asked for a
      // new login (prompt=login, max_age), which the person then gives here.
      if (state.authz && state.session) {
        return continueAuthz(null).then(function (leaving) {
          if (!leaving) state.session = null;
          return leaving;
        });
      }
      return false;
    }).then(function (leaving) {
      if (leaving) return;
      var name = resolve(location.hash);
      if (name === null) name = 'method';
      // Back from login.gov.pl with a password someone already defined: offer the reclaim first.
      if (name === 'session' && reclaimAllowed()) name = 'reclaim';
      history.replaceState(null, '', HASH_OF[name] || location.pathname + location.search);
      // Do not steal focus on first load, except to show a problem.
      show(name, !!state.pendingAlert[name]);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
