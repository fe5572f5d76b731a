import { Segmented } from 'antd';

import { useI18n, type Lang } from '../i18n';

export function LanguageSwitch() {
  const { lang, setLang } = useI18n();
  return (
    <Segmented<Lang>
      size="small"
      value={lang}
      data-testid="lang-switch"
      options={[
        { value: 'zh', label: '中文' },
        { value: 'en', label: 'EN' },
      ]}
      onChange={setLang}
    />
  );
}
